//! A fresh store per test: a temporary SQLite data directory, or a temporary PostgreSQL
//! database created through the admin URL and dropped (`WITH (FORCE)`) at the end.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use cashgrid_actors::store::{PostgresStore, SqliteStore, Store};
use uuid::Uuid;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The store under test, and its test-only probes.
#[derive(Clone)]
pub struct Harness {
    pub store: Arc<dyn Store>,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Harness {
    fn sqlite(store: SqliteStore) -> Self {
        Self {
            store: Arc::new(store.clone()),
            backend: Backend::Sqlite(store),
        }
    }

    fn postgres(store: PostgresStore) -> Self {
        Self {
            store: Arc::new(store.clone()),
            backend: Backend::Postgres(store),
        }
    }

    /// The raw JSON text of each clearing row's account snapshots, in clearing order.
    pub async fn clearing_account_texts(
        &self,
    ) -> anyhow::Result<Vec<(Option<String>, Option<String>)>> {
        Ok(match &self.backend {
            Backend::Sqlite(store) => store.clearing_account_texts().await?,
            Backend::Postgres(store) => store.clearing_account_texts().await?,
        })
    }

    /// Number of `token_events` rows.
    pub async fn count_events(&self) -> anyhow::Result<i64> {
        Ok(match &self.backend {
            Backend::Sqlite(store) => store.count_events().await?,
            Backend::Postgres(store) => store.count_events().await?,
        })
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("cashgrid-store-test-{}", Uuid::new_v4().simple()));
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
    scenario(Harness::sqlite(store)).await
}

pub async fn with_postgres<F, Fut>(scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Harness) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    with_postgres_url(|url| async move {
        let store = PostgresStore::connect(&url, 4, 2).await?;
        scenario(Harness::postgres(store)).await
    })
    .await
}

/// Run `scenario` with the URL of a fresh database, then drop the database, even when the
/// scenario fails or panics.
pub async fn with_postgres_url<F, Fut>(scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let admin_url = std::env::var("CASHGRID_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|err| {
            anyhow!(
                "PostgreSQL is unreachable through CASHGRID_TEST_DATABASE_URL ({}): {:#}. \
                 Start PostgreSQL, point CASHGRID_TEST_DATABASE_URL at an admin connection, or \
                 leave these tests out with `CASHGRID_SKIP_POSTGRES=1 scripts/test.sh`.",
                redact(&admin_url),
                anyhow::Error::new(err)
            )
        })?;
    let connection = tokio::spawn(connection);
    let name = format!("cashgrid_test_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("create database {name}"))?;

    let outcome = tokio::spawn(scenario(database_url(&admin_url, &name))).await;

    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("drop database {name}"));
    drop(admin);
    let _ = connection.await;
    match outcome {
        Ok(result) => {
            result?;
            dropped
        }
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(anyhow!("scenario task failed: {err}")),
    }
}

/// `admin_url` naming database `name` instead: URL or `key=value` form.
fn database_url(admin_url: &str, name: &str) -> String {
    match admin_url.split_once("://") {
        Some((scheme, rest)) => {
            let (rest, query) = match rest.split_once('?') {
                Some((rest, query)) => (rest, format!("?{query}")),
                None => (rest, String::new()),
            };
            let authority = rest
                .split_once('/')
                .map_or(rest, |(authority, _)| authority);
            format!("{scheme}://{authority}/{name}{query}")
        }
        None => format!("{admin_url} dbname={name}"),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => match rest.split_once('@') {
            Some((user_info, host)) => {
                let user = user_info
                    .split_once(':')
                    .map_or(user_info, |(user, _)| user);
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

#[test]
fn database_urls() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        database_url("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        database_url("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
    assert_eq!(database_url("host=h user=u", "x"), "host=h user=u dbname=x");
    assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u@h/db");
}
