//! A fresh store per test: a temporary SQLite data directory, or a PostgreSQL database copied
//! from the migrated template (`tests/support/database.rs`, shared with the end-to-end tests)
//! and dropped (`WITH (FORCE)`) at the end, even when the test fails.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cashgrid_actors::context::EntityContext;
use cashgrid_actors::crypto::{KeyPolicy, SecretHasher, ServerKey};
use cashgrid_actors::metrics::CurrencyLabels;
use cashgrid_actors::store::{Inspection, PostgresStore, SqliteStore, Store};
use cashgrid_actors::writer::{Writer, WriterConfig};
use uuid::Uuid;

use crate::database::TestDatabase;

/// The store under test, and its test-only probes.
#[derive(Clone)]
pub struct Harness {
    pub store: Arc<dyn Store>,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// The store and its data directory.
    Sqlite(SqliteStore, PathBuf),
    /// The store and its database's URL.
    Postgres(PostgresStore, String),
}

impl Harness {
    fn sqlite(store: SqliteStore, dir: &Path) -> Self {
        Self { store: Arc::new(store.clone()), backend: Backend::Sqlite(store, dir.to_owned()) }
    }

    fn postgres(store: PostgresStore, url: &str) -> Self {
        Self { store: Arc::new(store.clone()), backend: Backend::Postgres(store, url.to_owned()) }
    }

    /// What one node's entity actors are handed over this store: its own writer (running
    /// on the current actix system), a fixed server key, default policies. Two calls are two
    /// nodes sharing the database.
    pub fn node_context(&self, timeout: std::time::Duration) -> anyhow::Result<Arc<EntityContext>> {
        let (writer, task) = Writer::new(Arc::clone(&self.store), WriterConfig::default(), timeout);
        actix::spawn(task);
        let key = ServerKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")?;
        Ok(Arc::new(EntityContext {
            store: Arc::clone(&self.store),
            writer,
            hasher: SecretHasher::new(key),
            key_policy: KeyPolicy::default(),
            currencies: CurrencyLabels::default(),
        }))
    }

    /// Apply a migration of the backend under test, as a kind's migration file would be.
    pub async fn migrate(&self, postgres: &str, sqlite: &str) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Sqlite(_, dir) => {
                let conn = rusqlite::Connection::open(dir.join(SqliteStore::FILE_NAME))?;
                conn.execute_batch(sqlite)?;
            }
            Backend::Postgres(_, url) => crate::database::connect(url).await?.batch_execute(postgres).await?,
        }
        Ok(())
    }

    /// The raw JSON text of each clearing row's account snapshots, in clearing order.
    pub async fn clearing_account_texts(&self) -> anyhow::Result<Vec<(Option<String>, Option<String>)>> {
        Ok(match &self.backend {
            Backend::Sqlite(store, _) => store.clearing_account_texts().await?,
            Backend::Postgres(store, _) => store.clearing_account_texts().await?,
        })
    }

    /// Number of `token_events` rows.
    pub async fn count_events(&self) -> anyhow::Result<i64> {
        Ok(match &self.backend {
            Backend::Sqlite(store, _) => store.count_events().await?,
            Backend::Postgres(store, _) => store.count_events().await?,
        })
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("cashgrid-store-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn with_sqlite<F, Fut>(scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let dir = TempDir::new()?;
    let store = SqliteStore::open(dir.path())?;
    scenario(Harness::sqlite(store, dir.path())).await
}

/// Run `scenario` on a store over a fresh copy of the migrated template.
pub async fn with_postgres<F, Fut>(scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let database = TestDatabase::migrated().await?;
    let store = PostgresStore::connect(&database.url, 4, 2).await?;
    scenario(Harness::postgres(store, &database.url)).await
}

/// Run `scenario` with the URL of a fresh, empty database (no schema yet).
pub async fn with_empty_postgres_database<F, Fut>(scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let database = TestDatabase::empty().await?;
    scenario(database.url.clone()).await
}
