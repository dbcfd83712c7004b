//! PostgreSQL databases for tests: one harness for the store tests (`actors/tests/store.rs`)
//! and the end-to-end tests (`tests/e2e/main.rs`), which both include this file by path.
//!
//! Migrating an empty database used to be most of a PostgreSQL test's time. Instead, the first
//! test process that needs a database builds a *template*, migrated once by
//! `PostgresStore::connect` exactly as a server migrates, and every test gets a copy of it:
//! `CREATE DATABASE cashgrid_test_<uuid> TEMPLATE cashgrid_tmpl_<hash>`. A server started on
//! the copy finds its schema up to date and migrates nothing.
//!
//! - **Versioned.** `<hash>` is a hash of the migrations this build applies, so a changed
//!   migration set gets a template of its own, and checkouts with different migrations can
//!   test against one server at the same time.
//! - **Built once.** nextest runs every test in a process of its own; building is serialised
//!   by a session advisory lock on the admin database. A process that finds the template ready
//!   (`datistemplate`, set last) takes no lock; one whose builder was killed half-way is not
//!   ready, and the next builder replaces it.
//! - **Copyable.** `CREATE DATABASE … TEMPLATE` fails while anyone is connected to the
//!   template, so once migrated it refuses connections and its last ones are ended.
//! - **Cleaned up.** The builder of a new template drops the templates of other migration sets
//!   older than a day (the creation time is the database's comment); a run still using one
//!   builds it again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use cashgrid_actors::store::PostgresStore;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

pub const ADMIN_URL_VARIABLE: &str = "CASHGRID_TEST_DATABASE_URL";
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How long connecting to PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the template's last connections may take to end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
const TEMPLATE_PREFIX: &str = "cashgrid_tmpl_";
const DATABASE_PREFIX: &str = "cashgrid_test_";
/// Advisory lock key serialising template builds ("cgtmpl"; the server's migration lock is
/// another key, taken in other databases).
const TEMPLATE_LOCK: i64 = 0x6367_746d_706c;
/// Templates of other migration sets younger than this are left alone: another checkout's run
/// may be copying them right now.
const STALE_TEMPLATE_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The template's comment: this prefix and its creation time in Unix seconds.
const CREATED_COMMENT: &str = "cashgrid test template, created ";

/// The admin connection's URL: `CASHGRID_TEST_DATABASE_URL`, or the local server's.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Connect with a bounded wait; the connection runs as a task on the current runtime.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
        .await
        .map_err(|_| anyhow!("no answer from {} within {CONNECT_TIMEOUT:?}", redact(url)))?
        .with_context(|| format!("connect to {}", redact(url)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn connect_admin(admin_url: &str) -> anyhow::Result<Client> {
    connect(admin_url).await.with_context(|| {
        format!(
            "PostgreSQL tests need a server. Start one, point {ADMIN_URL_VARIABLE} at an admin \
             connection, or leave these tests out with `CASHGRID_SKIP_POSTGRES=1 scripts/test.sh`"
        )
    })
}

/// A database that exists for one test; dropping it drops the database (`WITH (FORCE)`).
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A copy of the template: the schema of this build, no rows.
    pub async fn migrated() -> anyhow::Result<Self> {
        let admin_url = admin_url();
        let admin = connect_admin(&admin_url).await?;
        let name = format!("{DATABASE_PREFIX}{}", Uuid::new_v4().simple());
        let template = ensure_template(&admin, &admin_url).await?;
        let copy = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        if let Err(error) = admin.batch_execute(&copy).await {
            // Another checkout's run may have dropped a day-old template just now: build it
            // again, once.
            eprintln!("copying {template} failed ({error}); building it again");
            ensure_template(&admin, &admin_url).await?;
            admin.batch_execute(&copy).await.with_context(|| format!("create database {name} from {template}"))?;
        }
        Ok(Self { url: database_url(&admin_url, &name), admin_url, name })
    }

    /// An empty database, for tests of the migrations themselves.
    #[allow(dead_code)] // The end-to-end tests, which include this file too, need none.
    pub async fn empty() -> anyhow::Result<Self> {
        let admin_url = admin_url();
        let admin = connect_admin(&admin_url).await?;
        let name = format!("{DATABASE_PREFIX}{}", Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("create database {name}"))?;
        Ok(Self { url: database_url(&admin_url, &name), admin_url, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one unwinding: a private
        // runtime on a thread of its own drops the database.
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let outcome = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime
                .block_on(async move { connect(&admin_url).await?.batch_execute(&statement).await.map_err(Into::into) })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("warning: could not drop test database {}: {error:#}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

/// `cashgrid_tmpl_` and the first 16 hex digits of a SHA-256 over every migration.
fn template_name() -> String {
    let mut hash = Sha256::new();
    for (version, sql) in PostgresStore::migrations() {
        hash.update(version.to_be_bytes());
        hash.update(u64::try_from(sql.len()).unwrap_or(u64::MAX).to_be_bytes());
        hash.update(sql.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    format!("{TEMPLATE_PREFIX}{hex}")
}

/// The name of a ready template of this build's migrations, built first if need be.
async fn ensure_template(admin: &Client, admin_url: &str) -> anyhow::Result<String> {
    let name = template_name();
    if is_ready(admin, &name).await? {
        return Ok(name);
    }
    admin.execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK]).await.context("lock the template build")?;
    let built = build_template(admin, admin_url, &name).await;
    let unlocked = admin.execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK]).await;
    built?;
    unlocked.context("unlock the template build")?;
    Ok(name)
}

async fn is_ready(admin: &Client, name: &str) -> anyhow::Result<bool> {
    let row = admin
        .query_opt("SELECT datistemplate FROM pg_database WHERE datname = $1", &[&name])
        .await
        .context("look for the template database")?;
    Ok(match row {
        Some(row) => row.try_get::<_, bool>(0)?,
        None => false,
    })
}

/// Under the build lock: migrate a new template unless another process just did.
async fn build_template(admin: &Client, admin_url: &str, name: &str) -> anyhow::Result<()> {
    if is_ready(admin, name).await? {
        return Ok(());
    }
    let started = Instant::now();
    // What a killed builder left behind is never marked ready: start over. (CREATE and DROP
    // DATABASE refuse to share a statement batch, which is one transaction.)
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .with_context(|| format!("drop the unfinished template database {name}"))?;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .with_context(|| format!("create template database {name}"))?;
    let store = PostgresStore::connect(&database_url(admin_url, name), 1, 1)
        .await
        .map_err(|error| anyhow!("migrate template database {name}: {error}"))?;
    drop(store);
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
             COMMENT ON DATABASE \"{name}\" IS '{CREATED_COMMENT}{created}'"
        ))
        .await
        .with_context(|| format!("close template database {name}"))?;
    close_connections(admin, name).await?;
    // Last: from here on, other processes copy it without taking the lock.
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" IS_TEMPLATE true"))
        .await
        .with_context(|| format!("mark template database {name}"))?;
    eprintln!("built test template database {name} in {:?}", started.elapsed());
    drop_stale_templates(admin, name, created).await;
    Ok(())
}

/// End every connection to `name` (the migrating store's pool closes asynchronously) and wait,
/// bounded, until none is left.
async fn close_connections(admin: &Client, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    loop {
        let open: i64 = admin
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .await
            .and_then(|row| row.try_get(0))
            .with_context(|| format!("end the connections to {name}"))?;
        if open == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{open} connections to template database {name} still open after {CLOSE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Best effort: drop the templates of other migration sets that are older than a day.
async fn drop_stale_templates(admin: &Client, current: &str, now: u64) {
    let listed =
        admin.query("SELECT datname, COALESCE(shobj_description(oid, 'pg_database'), '') FROM pg_database", &[]).await;
    let rows = match listed {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("warning: cannot list template databases: {error}");
            return;
        }
    };
    for row in rows {
        let (Ok(name), Ok(comment)) = (row.try_get::<_, String>(0), row.try_get::<_, String>(1)) else {
            continue;
        };
        if !name.starts_with(TEMPLATE_PREFIX) || name == current {
            continue;
        }
        let created = comment.strip_prefix(CREATED_COMMENT).and_then(|secs| secs.parse::<u64>().ok()).unwrap_or(0);
        if now.saturating_sub(created) < STALE_TEMPLATE_AGE.as_secs() {
            continue;
        }
        let unmarked = admin.batch_execute(&format!("ALTER DATABASE \"{name}\" IS_TEMPLATE false")).await;
        let dropped = match unmarked {
            Ok(()) => admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await,
            Err(error) => Err(error),
        };
        match dropped {
            Ok(()) => eprintln!("dropped stale test template database {name}"),
            Err(error) => eprintln!("warning: cannot drop stale template database {name}: {error}"),
        }
    }
}

/// `admin_url` naming database `name` instead: URL or `key=value` form.
pub fn database_url(admin_url: &str, name: &str) -> String {
    match admin_url.split_once("://") {
        Some((scheme, rest)) => {
            let (rest, query) = match rest.split_once('?') {
                Some((rest, query)) => (rest, format!("?{query}")),
                None => (rest, String::new()),
            };
            let authority = rest.split_once('/').map_or(rest, |(authority, _)| authority);
            format!("{scheme}://{authority}/{name}{query}")
        }
        None => format!("{admin_url} dbname={name}"),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{database_url, redact, template_name, TEMPLATE_PREFIX};

    #[test]
    fn database_urls_replace_only_the_database_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(database_url("postgresql://u:p@h/db?sslmode=disable", "x"), "postgresql://u:p@h/x?sslmode=disable");
        assert_eq!(database_url("postgres://h:5432", "x"), "postgres://h:5432/x");
        assert_eq!(database_url("postgres://h", "x"), "postgres://h/x");
        assert_eq!(database_url("host=h user=u", "x"), "host=h user=u dbname=x");
    }

    #[test]
    fn messages_show_no_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn the_template_is_named_after_the_migrations() {
        let name = template_name();
        assert_eq!(name, template_name(), "the same build, the same template");
        let hash = name.strip_prefix(TEMPLATE_PREFIX).unwrap_or_default();
        assert!(hash.len() == 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit()), "{name}");
    }
}
