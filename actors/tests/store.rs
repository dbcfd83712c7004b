//! The store contract, run against both backends: every scenario in `store/scenarios.rs` and
//! `store/portal.rs` runs as `sqlite::<name>` (a fresh data directory per test) and as
//! `postgres::<name>` (a fresh database per test, copied from a template migrated once:
//! `tests/support/database.rs`, shared with the end-to-end tests; admin URL from
//! `CASHGRID_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`). The
//! PostgreSQL tests fail when the server cannot be reached; `CASHGRID_SKIP_POSTGRES=1
//! scripts/test.sh` leaves them out (nextest shows them as skipped).

#[path = "../../tests/support/database.rs"]
mod database;

mod store {
    pub mod fixtures;
    pub mod harness;
    pub mod ledger;
    pub mod portal;
    pub mod scenarios;
    pub mod toy;
    pub mod toy_kind {
        pub mod domain;
    }
}

use store::{harness, ledger, portal, scenarios, toy};

/// `stores`: scenarios of the store alone; `actors`: scenarios that also run entity actors,
/// inside an actix system.
macro_rules! on_both_backends {
    (
        stores: [$($module:ident::$name:ident),* $(,)?],
        actors: [$($actor_module:ident::$actor_name:ident),* $(,)?] $(,)?
    ) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    crate::harness::with_sqlite(crate::$module::$name).await
                }
            )*
            $(
                #[actix::test]
                async fn $actor_name() -> anyhow::Result<()> {
                    crate::harness::with_sqlite(crate::$actor_module::$actor_name).await
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    crate::harness::with_postgres(crate::$module::$name).await
                }
            )*
            $(
                #[actix::test]
                async fn $actor_name() -> anyhow::Result<()> {
                    crate::harness::with_postgres(crate::$actor_module::$actor_name).await
                }
            )*
        }
    };
}

on_both_backends!(
    stores: [
    scenarios::token_round_trip,
    scenarios::version_fence,
    scenarios::batch_with_conflicts,
    scenarios::batch_of_distinct_tokens_decides_each_set,
    scenarios::a_failing_set_is_undone_alone_and_its_batch_commits,
    scenarios::an_idempotency_key_commits_once_with_its_set,
    scenarios::a_device_with_an_idempotency_key_is_stored_once,
    scenarios::partial_cashout_set,
    scenarios::set_order_decides_within_a_batch,
    scenarios::duplicate_plain_code,
    scenarios::list_tokens_filters_and_order,
    scenarios::customers_access_params,
    scenarios::devices,
    scenarios::large_batch_keeps_set_order,
    scenarios::ping,
    scenarios::entity_changes_commit_in_batches_fenced_by_version,
    portal::event_payloads_are_token_snapshots,
    portal::clearing_snapshots_default_accounts_at_commit,
    portal::default_account_rule,
    portal::journal_entries,
    portal::events_after_resumes_and_filters,
    portal::due_expiries_oldest_first,
    portal::delete_history_keeps_live_tokens,
    portal::delete_history_in_batches,
    portal::token_stats_by_state_and_type,
    portal::device_admin,
    portal::portal_customers,
    portal::access_records,
    ledger::the_store_rechecks_every_change_against_the_row,
    ],
    actors: [
        toy::a_toy_kind_runs_on_the_generic_shell_and_store,
        ledger::transfers_holds_and_chains_through_account_actors,
        ledger::concurrent_transfers_keep_the_books_balanced,
        ledger::ten_thousand_random_transfers_from_64_clients_on_two_nodes_balance,
        ledger::ten_thousand_transfers_through_one_hot_account_on_two_nodes_balance,
    ],
);

mod sqlite_only {
    use std::sync::Arc;

    use cashgrid_actors::store::{Inspection, SqliteStore, Store, TokenWrite, WriteOutcome, WriteSet};

    use crate::harness::TempDir;
    use crate::store::fixtures;

    #[tokio::test]
    async fn sqlite_data_survives_reopening() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let (customer, token) = {
            let store = SqliteStore::open(dir.path())?;
            let customer = store.create_customer(&fixtures::new_customer()).await?;
            let token = fixtures::full_token(customer.id);
            let outcomes = store
                .commit(&[WriteSet {
                    writes: vec![TokenWrite::Insert(token.clone())],
                    events: vec![fixtures::created_event(&token)],
                    clearing: None,
                    idempotency: None,
                    ..WriteSet::default()
                }])
                .await?;
            assert_eq!(outcomes, vec![WriteOutcome::Committed]);
            store.save_param(customer.id, "USE_PLAIN_CODES", &serde_json::json!(true)).await?;
            (customer, token)
        };
        // Reopen: the migrations are not applied twice and every acknowledged change is there.
        let store = SqliteStore::open(dir.path())?;
        assert_eq!(store.load_token(token.uuid).await?, Some(token.clone()));
        assert_eq!(store.load_customer(customer.id).await?, Some(customer.clone()));
        assert_eq!(store.load_param(customer.id, "USE_PLAIN_CODES").await?, Some(serde_json::json!(true)));
        assert_eq!(store.count_events().await?, 1);
        assert!(dir.path().join(SqliteStore::FILE_NAME).is_file());

        // Durable settings, as another process sees the file.
        let conn = rusqlite::Connection::open(dir.path().join(SqliteStore::FILE_NAME))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        assert_eq!(mode, "wal");
        let versions: i64 = conn.query_row("SELECT COUNT(*) FROM schema_migrations", [], |row| row.get(0))?;
        assert_eq!(versions, 6, "every migration applied once");
        Ok(())
    }

    #[tokio::test]
    async fn sqlite_open_creates_the_data_directory() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let nested = dir.path().join("a").join("b");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&nested)?);
        store.ping().await?;
        assert!(nested.join(SqliteStore::FILE_NAME).is_file());
        Ok(())
    }

    #[tokio::test]
    async fn sqlite_two_handles_on_one_file() -> anyhow::Result<()> {
        // The server and a CLI process open the same file: both migrate safely and see each
        // other's writes.
        let dir = TempDir::new()?;
        let server = SqliteStore::open(dir.path())?;
        let cli = SqliteStore::open(dir.path())?;
        let customer = cli.create_customer(&fixtures::new_customer()).await?;
        assert_eq!(server.load_customer(customer.id).await?, Some(customer));
        Ok(())
    }
}

mod postgres_only {
    use cashgrid_actors::store::{PostgresStore, StoreError};

    use crate::database::{connect, TestDatabase};
    use crate::harness;

    /// `(version, applied)` of every recorded migration.
    async fn recorded_migrations(url: &str) -> anyhow::Result<Vec<(i64, i64)>> {
        let client = connect(url).await?;
        let rows = client.query("SELECT version, applied FROM schema_migrations ORDER BY version", &[]).await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?)
    }

    #[tokio::test]
    async fn postgres_a_server_on_a_copy_of_the_template_migrates_nothing() -> anyhow::Result<()> {
        let database = TestDatabase::migrated().await?;
        let before = recorded_migrations(&database.url).await?;
        let versions: Vec<i64> = PostgresStore::migrations().iter().map(|(version, _)| *version).collect();
        assert_eq!(
            before.iter().map(|(version, _)| *version).collect::<Vec<_>>(),
            versions,
            "the template is fully migrated"
        );
        PostgresStore::connect(&database.url, 1, 1).await?;
        assert_eq!(recorded_migrations(&database.url).await?, before, "no migration applied again");
        Ok(())
    }

    #[tokio::test]
    async fn postgres_unreachable_is_unavailable() -> anyhow::Result<()> {
        // Nothing listens on port 1.
        let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres", 1, 1).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        Ok(())
    }

    #[tokio::test]
    async fn postgres_concurrent_start_up_migrates_once() -> anyhow::Result<()> {
        harness::with_empty_postgres_database(|url| async move {
            let (first, second, third) = tokio::join!(
                PostgresStore::connect(&url, 1, 1),
                PostgresStore::connect(&url, 1, 1),
                PostgresStore::connect(&url, 1, 1),
            );
            let store = first?;
            second?;
            third?;
            drop(store);
            // A later start finds the schema up to date.
            PostgresStore::connect(&url, 1, 1).await?;
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let connection = tokio::spawn(connection);
            let versions: i64 = client.query_one("SELECT COUNT(*) FROM schema_migrations", &[]).await?.try_get(0)?;
            assert_eq!(versions, i64::try_from(PostgresStore::migrations().len())?);
            drop(client);
            connection.await??;
            Ok(())
        })
        .await
    }
}
